#include "services/leaderboard/leaderboard_events.h"
