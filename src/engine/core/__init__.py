"""What every stage shares: names, labels, states, the wire format and task errors.

Pure code with no I/O; imports nothing from the rest of the engine.
"""
