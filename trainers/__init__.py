"""verirl: trainers (filled by later issues)."""
