# Automatic celebrations: birthdays and work anniversaries (issue 18, part 3).
