"""`smolvla-ros eval`: success rates through the real graph, and what they are made of."""
