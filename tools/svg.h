/* svg.h: what the CLI's SVG writers (heatmap_svg.c, plot.c) share. */
#ifndef TP_TOOLS_SVG_H
#define TP_TOOLS_SVG_H

#include <stdio.h>

/* svg_put_escaped: writes s to f as XML character data or attribute text (&, <, >, "
 * escaped), so titles and labels taken from URLs or phase specs cannot break the file. */
void svg_put_escaped(FILE *f, const char *s);

#endif
