"""The closed loop: lanes of model attempts, each verified, steered by strategies, sharing an archive."""
