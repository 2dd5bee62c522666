"""Configuration: the schema of every key with its default (`schema`), units such as
`512MiB` and `2m` (`units`), the config in force with live reload (`live`) and the file
watcher that triggers it (`watch`)."""
