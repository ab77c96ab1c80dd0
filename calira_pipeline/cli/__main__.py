import sys

from calira_pipeline.cli.main import main

sys.exit(main())
