/* Messages of the load-balancer example (MARLLB-style): observations from the C++ data plane to a
 * Python agent, actions back. Both travel over modelswap channels; agent.py packs and unpacks the
 * same bytes with struct (formats OBS_FORMAT / ACTION_FORMAT there). Little-endian, no padding.
 *
 * lb_observation (2840 bytes), channel "lb-observations", ring of 4:
 *   offset size field
 *        0    8 seq            observation id = the channel sequence id it is published under
 *        8    8 timestamp_ns   CLOCK_MONOTONIC when it was taken
 *       16    8 active_bitmap  bit i set = server i is up
 *       24  256 flow_count     u32[64], open flows per server
 *      280 2560 features       f32[64][10], per server: see kFeatureNames in data_plane.cc
 *
 * lb_action (784 bytes), channel "lb-actions", ring of 4 (read as a mailbox):
 *        0    8 obs_seq        the observation this action answers
 *        8    8 timestamp_ns   CLOCK_MONOTONIC when the agent computed it
 *       16  256 weights        f32[64], >= 0, sum 1 over servers that were up
 *      272  256 alias_prob     f32[64], Vose alias table: pick column i uniformly, keep i with
 *      528  256 alias_index    u32[64]  probability alias_prob[i], else take alias_index[i]
 */
#ifndef MODELSWAP_EXAMPLES_LOADBALANCER_LB_MESSAGES_H_
#define MODELSWAP_EXAMPLES_LOADBALANCER_LB_MESSAGES_H_

#include <stddef.h>
#include <stdint.h>

#define LB_SERVERS 64
#define LB_FEATURES 10

typedef struct lb_observation {
  uint64_t seq;
  uint64_t timestamp_ns;
  uint64_t active_bitmap;
  uint32_t flow_count[LB_SERVERS];
  float features[LB_SERVERS][LB_FEATURES];
} lb_observation;

typedef struct lb_action {
  uint64_t obs_seq;
  uint64_t timestamp_ns;
  float weights[LB_SERVERS];
  float alias_prob[LB_SERVERS];
  uint32_t alias_index[LB_SERVERS];
} lb_action;

#ifdef __cplusplus
static_assert(sizeof(lb_observation) == 2840, "observation layout");
static_assert(offsetof(lb_observation, flow_count) == 24, "observation layout");
static_assert(offsetof(lb_observation, features) == 280, "observation layout");
static_assert(sizeof(lb_action) == 784, "action layout");
static_assert(offsetof(lb_action, alias_prob) == 272, "action layout");
static_assert(offsetof(lb_action, alias_index) == 528, "action layout");
#endif

#endif /* MODELSWAP_EXAMPLES_LOADBALANCER_LB_MESSAGES_H_ */
