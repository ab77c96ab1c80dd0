from calira_pipeline.sandbox.server import main

main()
