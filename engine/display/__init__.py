"""What views draw, computed without Qt: color and contour levels, contours, profiles along a line.

The desktop app holds no numerics of its own; it asks these modules and only draws.
"""
