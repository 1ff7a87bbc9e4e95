"""verirl: envs (filled by later issues)."""
