"""The product's extension points.

`milestone_reached` is sent by albums.services.announce_milestone once per
(album, threshold), and again on later runs until every receiver succeeds.
Receivers get `album`, `threshold`, `count` and `milestone` keyword arguments;
an exception in a receiver means "not announced yet, try again later".
"""

from django.dispatch import Signal

milestone_reached = Signal()
