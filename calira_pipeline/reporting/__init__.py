"""What people read: the headline numbers (defined once), charts and the HTML report."""
