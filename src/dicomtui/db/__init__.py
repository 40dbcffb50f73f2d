"""Persistence: atomic TinyDB storage, the one DB writer thread, the transaction log."""
