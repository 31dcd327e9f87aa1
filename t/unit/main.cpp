// Boost.Test entry point for the core unit tests (no nginx involved).
#define BOOST_TEST_MODULE mcp_session_core
#include <boost/test/unit_test.hpp>
