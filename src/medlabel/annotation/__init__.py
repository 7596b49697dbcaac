"""Domain model of labels and annotations: schemas, annotation content, revisions."""
