# Awards, nominations and program budgets (issue 18, parts 2 and 4).
