// The registry of orgs, one set per cluster slot (issue 14): filled in by the
// engineer who owns it.
#pragma once
