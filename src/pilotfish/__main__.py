from pilotfish.cli import main

main()
