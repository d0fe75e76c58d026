#include <libpmemobj.h>
