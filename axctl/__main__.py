from axctl.cli import main

main()
