"""The shop: merchants' products with stock, and orders paid from the buyer's wallet."""
