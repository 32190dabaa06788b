"""The vampviz dashboard: pure helpers (catalog, loaders, figure builders) for the pages in pages/."""
