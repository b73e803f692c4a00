from deribit_ts.cli import main

main()
