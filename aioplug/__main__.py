from aioplug.cli import main
import sys
sys.exit(main())
