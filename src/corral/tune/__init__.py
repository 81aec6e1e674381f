"""`corral tune`: search engine settings for a workload, measured through the one pipeline."""
