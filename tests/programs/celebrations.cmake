# Automatic celebrations.
