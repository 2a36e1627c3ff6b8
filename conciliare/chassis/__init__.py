"""What every nameko service of Conciliare is built from."""
