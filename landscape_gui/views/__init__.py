"""Views of a landscape: the 2D heatmap, the 3D surface, slices; each a Qt widget over numpy arrays."""
