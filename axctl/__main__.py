from axctl.fast import main

main()
