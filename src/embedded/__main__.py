import sys

from src.embedded.watchdog import watch

watch(sys.stdin.buffer)
