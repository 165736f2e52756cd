"""What every resource needs: position keys, ordering statements."""
