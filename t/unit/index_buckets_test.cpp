#include "mcp_session/index_buckets.hpp"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

using namespace mcp_session;

BOOST_AUTO_TEST_SUITE(index_buckets)

BOOST_AUTO_TEST_CASE(a_zone_gets_a_bucket_per_512_bytes_and_at_least_one)
{
    BOOST_TEST(index_buckets_for(0) == 1u);
    BOOST_TEST(index_buckets_for(511) == 1u);
    BOOST_TEST(index_buckets_for(1 << 20) == 2048u);
    BOOST_TEST(index_buckets_for(std::size_t{1} << 30) == 2097152u);
    // A 128-byte session per chunk: at most 4 a bucket in a full zone.
    BOOST_TEST((std::size_t{1} << 30) / 128 / index_buckets_for(std::size_t{1} << 30) == 4u);
}

BOOST_AUTO_TEST_CASE(every_hash_falls_in_a_bucket_of_the_array)
{
    for (const std::uint32_t n : {1u, 2u, 3u, 2048u, 2097151u, std::numeric_limits<std::uint32_t>::max()}) {
        BOOST_TEST(bucket_of(0, n) == 0u);
        BOOST_TEST(bucket_of(std::numeric_limits<std::uint64_t>::max(), n) == n - 1);
    }
}

BOOST_AUTO_TEST_CASE(buckets_ascend_with_the_hash)
{
    std::mt19937_64 random(7);
    std::vector<std::uint64_t> hashes(10000);
    for (auto& h : hashes) {
        h = random();
    }
    std::sort(hashes.begin(), hashes.end());
    for (const std::uint32_t n : {3u, 1000u, 2097152u}) {
        for (std::size_t i = 1; i < hashes.size(); ++i) {
            BOOST_TEST_REQUIRE(bucket_of(hashes[i - 1], n) <= bucket_of(hashes[i], n));
        }
    }
}

BOOST_AUTO_TEST_CASE(the_last_hash_of_a_bucket_is_its_upper_edge)
{
    std::mt19937_64 random(11);
    for (const std::uint32_t n : {2u, 3u, 7u, 2048u, 2097152u, 3000017u, std::numeric_limits<std::uint32_t>::max()}) {
        for (int i = 0; i < 200; ++i) {
            const auto b = static_cast<std::uint32_t>(random() % (n - 1));
            const std::uint64_t last = last_hash_of(b, n);
            BOOST_TEST_REQUIRE(bucket_of(last, n) == b);
            BOOST_TEST_REQUIRE(bucket_of(last + 1, n) == b + 1);
        }
        BOOST_TEST(last_hash_of(n - 1, n) == std::numeric_limits<std::uint64_t>::max());
    }
}

BOOST_AUTO_TEST_CASE(random_hashes_spread_evenly)
{
    std::mt19937_64 random(3);
    const std::uint32_t n = 1024;
    std::vector<int> load(n);
    for (int i = 0; i < 1024 * 64; ++i) {
        ++load[bucket_of(random(), n)];
    }
    BOOST_TEST(*std::max_element(load.begin(), load.end()) < 64 * 2);
    BOOST_TEST(*std::min_element(load.begin(), load.end()) > 64 / 2);
}

BOOST_AUTO_TEST_SUITE_END()
