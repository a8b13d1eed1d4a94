// n3ml's own NEST cell: the IR's CubaLIF / ALIF step (docs/semantics.md), for the cells no NEST model forms
// exactly (docs/backends/nest.md): an exponential current, a threshold that adapts, and a reset to a value
// after which the neuron integrates, and may fire, in the very next step (Norse's LSNNCell; a CubaLIF with
// reset to a value in a one-step loop).
//
// n3ml ships this file as n3ml/backends/nest/n3ml_cell.cpp and copies it next to the emitted program, which
// compiles it once against the NEST it runs on (netlist_runtime.nest_module) and installs it with
// nest.Install. The cell takes the IR's per-step factors as parameters, so it computes the IR's own
// formulas in the IR's order (no time constants to convert). As in every n3ml NEST cell, V_m is the IR's
// v - v_leak (theta and v_reset are given shifted by v_leak):
//
//   i = a_s i + x                         x: this step's weighted input spikes (IR units)
//   v* = a_m v + rg i                     (a_s = 0: a neuron without current, v* = a_m v + rg x)
//   b' = a_b b;  thr = theta + b'
//   refractory (c > 0): v held at v, no spike; else s = [v* > thr]
//   after a spike: v = v_reset (reset 1), v = v* - (rho + b') (reset 2: subtract the unshifted threshold
//   rho = theta + v_leak and the adaptation), unchanged (reset 0); c = refractory steps
//   b = b' + q s
//
// Its current enters v in the step the input arrives (no extra step, unlike iaf_psc_exp).
//
// Filter ports (SpikingJelly's SynapseFilter, docs/semantics.md §5b, in front of this cell's synapses): NEST
// synapses add fixed weights and a NEST neuron sends only spikes, so a filter's state, which decays only in
// steps without its input spike, cannot travel between cells. The receiving cell keeps it: receptor port
// p = 1..filter_ports takes the spikes of one filtered source neuron (one connection per port; the port, not
// the sender, tells which source spiked), whose filter state the cell updates each step in the IR's order
//
//   f_p = f_p - (1 - s_p) f_p leak_p + s_p      s_p: 1 if a spike arrived at port p in this step, else 0
//
// and adds w_p f_p to x (w_p: the weight the port's connection carries). Port 0 is the plain input. Memory:
// three doubles and min + max delay arrival slots per port (O(fan-in of filtered synapses) per cell). A cell with
// a_m = 0, rg = 1, theta = inf and ports of weight 1 records the filters' currents exactly as V_m.

#include "archiving_node.h"
#include "event.h"
#include "nest_extension_interface.h"
#include "nest_types.h"
#include "recordables_map.h"
#include "ring_buffer.h"
#include "universal_data_logger.h"
#include "universal_data_logger_impl.h"

#include <cmath>
#include <string>
#include <vector>

namespace n3ml
{

class n3ml_cell : public nest::ArchivingNode
{
public:
  n3ml_cell();
  n3ml_cell( const n3ml_cell& n );

  using nest::Node::handle;
  using nest::Node::handles_test_event;

  size_t
  send_test_event( nest::Node& target, size_t receptor_type, nest::synindex, bool ) override
  {
    nest::SpikeEvent e;
    e.set_sender( *this );
    return target.handles_test_event( e, receptor_type );
  }
  size_t
  handles_test_event( nest::SpikeEvent&, size_t receptor_type ) override
  {
    if ( receptor_type > ports_() )  // 0: the plain input; 1..filter_ports: filter ports
    {
      throw nest::UnknownReceptorType( receptor_type, get_name() );
    }
    return receptor_type;
  }
  size_t
  handles_test_event( nest::DataLoggingRequest& dlr, size_t receptor_type ) override
  {
    if ( receptor_type != 0 )
    {
      throw nest::UnknownReceptorType( receptor_type, get_name() );
    }
    return B_.logger_.connect_logging_device( dlr, recordablesMap_ );
  }
  void
  handle( nest::SpikeEvent& e ) override
  {
    const long lag = e.get_rel_delivery_steps( nest::kernel().simulation_manager.get_slice_origin() );
    const size_t port = e.get_rport();
    if ( port == 0 )
    {
      B_.spikes_.add_value( lag, e.get_weight() * e.get_multiplicity() );
      return;
    }
    // a port has one static connection: its weight is the same in every event, and it matters only once
    // the port's filter state is nonzero, i.e. after its first spike
    S_.filter_w[ port - 1 ] = e.get_weight();
    B_.filter_spikes_[ slot_( lag ) * ports_() + port - 1 ] += static_cast< double >( e.get_multiplicity() );
  }
  void
  handle( nest::DataLoggingRequest& e ) override
  {
    B_.logger_.handle( e );
  }

  void
  get_status( Dictionary& d ) const override
  {
    d[ "a_m" ] = P_.a_m;
    d[ "a_s" ] = P_.a_s;
    d[ "a_b" ] = P_.a_b;
    d[ "rg" ] = P_.rg;
    d[ "q" ] = P_.q;
    d[ "theta" ] = P_.theta;
    d[ "v_reset" ] = P_.v_reset;
    d[ "reset" ] = P_.reset;
    d[ "rho" ] = P_.rho;
    d[ "refractory" ] = P_.refractory;
    d[ "filter_ports" ] = P_.filter_ports;
    d[ "filter_leak" ] = P_.filter_leak;
    d[ "filter_state" ] = S_.filter_i;
    d[ nest::names::V_m ] = S_.v;
    d[ "I" ] = S_.i;
    d[ "b" ] = S_.b;
    ArchivingNode::get_status( d );
    d[ nest::names::recordables ] = recordablesMap_.get_list();
  }
  void
  set_status( const Dictionary& d ) override
  {
    Parameters_ p = P_;  // copies: nothing changes if NEST refuses the dictionary
    State_ s = S_;
    d.update_value( "a_m", p.a_m );
    d.update_value( "a_s", p.a_s );
    d.update_value( "a_b", p.a_b );
    d.update_value( "rg", p.rg );
    d.update_value( "q", p.q );
    d.update_value( "theta", p.theta );
    d.update_value( "v_reset", p.v_reset );
    d.update_value( "reset", p.reset );
    d.update_value( "rho", p.rho );
    d.update_value( "refractory", p.refractory );
    d.update_value( "filter_ports", p.filter_ports );
    d.update_value( "filter_leak", p.filter_leak );
    d.update_value( nest::names::V_m, s.v );
    d.update_value( "I", s.i );
    d.update_value( "b", s.b );
    std::vector< double > state = s.filter_i;
    const bool given = d.update_value( "filter_state", state );  // PyNN passes every default back
    p.check();
    const size_t ports = static_cast< size_t >( p.filter_ports );
    if ( given and state.size() != ports )
    {
      throw nest::BadProperty( "n3ml_cell: filter_state must hold one value per filter port (filter_ports = "
        + std::to_string( ports ) + "), found " + std::to_string( state.size() ) + " values" );
    }
    s.filter_i = given ? state : s.filter_i;
    s.filter_i.resize( ports, 0.0 );  // a new port starts at 0
    s.filter_w.resize( ports, 0.0 );
    ArchivingNode::set_status( d );
    P_ = p;
    S_ = s;
  }

private:
  friend class nest::RecordablesMap< n3ml_cell >;
  friend class nest::UniversalDataLogger< n3ml_cell >;

  struct Parameters_
  {
    double a_m = 1.0, a_s = 0.0, a_b = 0.0, rg = 1.0, q = 0.0, theta = 1.0, v_reset = 0.0;
    double reset = 1.0;       // 1: to v_reset after a spike; 2: subtract rho + b'; 0: none
    double rho = 1.0;         // the IR's theta (reset 2)
    double refractory = 0.0;  // steps (a whole number)
    double filter_ports = 0.0;  // filter ports (receptors 1..filter_ports; a whole number)
    std::vector< double > filter_leak;  // per port, or one value for all; 0..1

    // NEST's BadProperty naming the parameter (set_status); whether filter_leak has one value per port is
    // checked before a run (pre_run_hook), since the two may be set in separate calls
    void
    check() const
    {
      if ( not( reset == 0.0 or reset == 1.0 or reset == 2.0 ) )
      {
        throw nest::BadProperty( "n3ml_cell: reset must be 0 (none), 1 (to v_reset) or 2 (subtract), found "
          + std::to_string( reset ) );
      }
      if ( not( refractory >= 0.0 ) or refractory != std::floor( refractory ) )
      {
        throw nest::BadProperty( "n3ml_cell: refractory must be a whole number of steps >= 0, found "
          + std::to_string( refractory ) );
      }
      if ( not( filter_ports >= 0.0 ) or filter_ports != std::floor( filter_ports ) or filter_ports > 1e9 )
      {
        throw nest::BadProperty( "n3ml_cell: filter_ports must be a whole number >= 0, found "
          + std::to_string( filter_ports ) );
      }
      for ( const double l : filter_leak )
      {
        if ( not( l >= 0.0 and l <= 1.0 ) )
        {
          throw nest::BadProperty( "n3ml_cell: filter_leak must lie in 0..1 (the fraction of a filter's current "
                                   "lost in a step without its spike), found "
            + std::to_string( l ) );
        }
      }
    }
  };
  struct State_
  {
    double v = 0.0, i = 0.0, b = 0.0, c = 0.0;  // c: refractory steps left
    std::vector< double > filter_i;             // the filter state of each port
    std::vector< double > filter_w;             // the weight of each port's connection
  };
  struct Buffers_
  {
    Buffers_( n3ml_cell& n )
      : logger_( n )
    {
    }
    Buffers_( const Buffers_&, n3ml_cell& n )
      : logger_( n )
    {
    }
    nest::RingBuffer spikes_;
    // spikes arriving at the filter ports: a ring of NEST's min + max delay slots (as a RingBuffer) of one value per
    // port, in one array so that a step reads its ports' arrivals from consecutive memory
    std::vector< double > filter_spikes_;
    nest::UniversalDataLogger< n3ml_cell > logger_;
  };

  size_t
  ports_() const
  {
    return static_cast< size_t >( P_.filter_ports );
  }
  static size_t
  slots_()
  {
    return nest::kernel().connection_manager.get_min_delay() + nest::kernel().connection_manager.get_max_delay();
  }
  static size_t
  slot_( const long lag )  // RingBuffer's index of a delivery `lag` steps into the slice
  {
    return static_cast< size_t >( nest::kernel().event_delivery_manager.get_modulo( lag ) );
  }
  void
  init_buffers_() override
  {
    B_.spikes_.clear();
    B_.filter_spikes_.assign( slots_() * ports_(), 0.0 );
    B_.logger_.reset();
    ArchivingNode::clear_history();
  }
  void
  pre_run_hook() override
  {
    if ( ports_() > 0 and P_.filter_leak.size() != 1 and P_.filter_leak.size() != ports_() )
    {
      throw nest::BadProperty( "n3ml_cell: filter_leak must hold one value or one per filter port (filter_ports = "
        + std::to_string( ports_() ) + "), found " + std::to_string( P_.filter_leak.size() ) + " values" );
    }
    if ( B_.filter_spikes_.size() != slots_() * ports_() )  // NEST's delays are known now (RingBuffer::resize)
    {
      B_.filter_spikes_.assign( slots_() * ports_(), 0.0 );
    }
    B_.logger_.init();
  }
  void
  update( nest::Time const& origin, const long from, const long to ) override
  {
    for ( long lag = from; lag < to; ++lag )
    {
      double x = B_.spikes_.get_value( lag );
      const size_t ports = S_.filter_i.size();
      if ( ports > 0 )
      {
        double* const arrived = B_.filter_spikes_.data() + slot_( lag ) * ports;
        const bool one_leak = P_.filter_leak.size() == 1;
        for ( size_t p = 0; p < ports; ++p )
        {
          // SpikingJelly's operations in its order (n3ml.ir.neurons.step_synapse_filter): ((1 - s) f) leak
          const double s = arrived[ p ];
          arrived[ p ] = 0.0;  // read once, as RingBuffer::get_value
          const double leak = one_leak ? P_.filter_leak[ 0 ] : P_.filter_leak[ p ];
          double& f = S_.filter_i[ p ];
          f = f - ( 1.0 - s ) * f * leak + s;
          x += S_.filter_w[ p ] * f;
        }
      }
      S_.i = P_.a_s * S_.i + x;  // the current evolves while refractory too
      const double b = P_.a_b * S_.b;
      const bool held = S_.c > 0.0;
      if ( not held )
      {
        S_.v = P_.a_m * S_.v + P_.rg * S_.i;
      }
      const bool spike = not held and S_.v > P_.theta + b;
      S_.c = spike ? P_.refractory : ( held ? S_.c - 1.0 : 0.0 );
      if ( spike )
      {
        if ( P_.reset == 1.0 )
        {
          S_.v = P_.v_reset;
        }
        else if ( P_.reset == 2.0 )
        {
          S_.v = S_.v - ( P_.rho + b );
        }
        set_spiketime( nest::Time::step( origin.get_steps() + lag + 1 ) );
        nest::SpikeEvent se;
        nest::kernel().event_delivery_manager.send( *this, se, lag );
      }
      S_.b = spike ? b + P_.q : b;
      B_.logger_.record_data( origin.get_steps() + lag );
    }
  }

  double
  get_v_() const
  {
    return S_.v;
  }
  double
  get_i_() const
  {
    return S_.i;
  }
  double
  get_b_() const
  {
    return S_.b;
  }

  Parameters_ P_;
  State_ S_;
  Buffers_ B_;
  static nest::RecordablesMap< n3ml_cell > recordablesMap_;
};

class Module : public nest::NESTExtensionInterface
{
public:
  void
  initialize() override
  {
    nest::register_node_model< n3ml_cell >( "n3ml_cell" );
  }
};

}  // namespace n3ml

nest::RecordablesMap< n3ml::n3ml_cell > n3ml::n3ml_cell::recordablesMap_;

namespace nest
{
template <>
void
RecordablesMap< n3ml::n3ml_cell >::create()
{
  insert_( names::V_m, &n3ml::n3ml_cell::get_v_ );
  insert_( "I", &n3ml::n3ml_cell::get_i_ );
  insert_( "b", &n3ml::n3ml_cell::get_b_ );
}
}

// defined after the specialization of RecordablesMap<n3ml_cell>::create, which the first one calls
n3ml::n3ml_cell::n3ml_cell()
  : ArchivingNode()
  , B_( *this )
{
  recordablesMap_.create();
}

n3ml::n3ml_cell::n3ml_cell( const n3ml_cell& n )
  : ArchivingNode( n )
  , P_( n.P_ )
  , S_( n.S_ )
  , B_( n.B_, *this )
{
}

// NEST's ModuleManager takes the address of the symbol `module` as the extension (ltdl looks for
// `<file name>_LTX_module` first, which a cached file name does not give)
extern "C"
{
  n3ml::Module module;
}
