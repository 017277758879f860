// Filled in by the engineer who owns it (issue 14).
#include <gtest/gtest.h>
