from botwatch.cli import main

main()
