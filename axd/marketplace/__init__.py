"""The plugin marketplace: versions and their ranges, a plugin's manifest checked for
publishing, and reproducible, safely unpacked archives. Standard library only, so both
`axctl plugin pack` and the daemon can use it."""
