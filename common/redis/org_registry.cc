#include "common/redis/org_registry.h"
