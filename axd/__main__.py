from axd.daemon.cli import main

main()
