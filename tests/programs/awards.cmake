# Awards, nominations and program budgets.
