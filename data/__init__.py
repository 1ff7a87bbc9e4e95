"""verirl: data (filled by later issues)."""
