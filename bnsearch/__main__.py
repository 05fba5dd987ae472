from bnsearch.cli import main

main()
