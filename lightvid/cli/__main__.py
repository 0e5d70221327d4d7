from lightvid.cli import console_main

console_main()
