import sys
from pathlib import Path

# the hand-made timelines live beside the tests (tests have no __init__.py)
sys.path.insert(0, str(Path(__file__).parent))
