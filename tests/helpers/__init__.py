"""What the tests share: real components started for them, and the golden cases."""
