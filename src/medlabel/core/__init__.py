"""Settings, the error hierarchy, ids and the optional-dependency loader."""
