"""Shipping: study completion, study zips, and the durable upload queue with its worker."""
