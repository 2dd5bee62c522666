#define LIMIT 10
/* Adds. */
static int *add(int a, int b) { return 0; }
struct point { int x; };
typedef struct point point_t;
enum color { RED };
