from axd.cli import main

main()
