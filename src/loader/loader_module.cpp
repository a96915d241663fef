// Module loader.
