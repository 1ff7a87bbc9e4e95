"""verirl: evals (filled by later issues)."""
