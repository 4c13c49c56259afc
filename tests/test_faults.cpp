// faults: see the commit that fills it in.
#include "support.hpp"
