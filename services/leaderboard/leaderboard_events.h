// Issue 17: the leaderboard's own events (badge earned, streak extended,
// period closed) on `lb:{org}:events`. Owned by the leaderboard-events work.
#pragma once
