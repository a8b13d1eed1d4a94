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

#include "archiving_node.h"
#include "event.h"
#include "nest_extension_interface.h"
#include "nest_types.h"
#include "recordables_map.h"
#include "ring_buffer.h"
#include "universal_data_logger.h"
#include "universal_data_logger_impl.h"

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
    if ( receptor_type != 0 )
    {
      throw nest::UnknownReceptorType( receptor_type, get_name() );
    }
    return 0;
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
    B_.spikes_.add_value( e.get_rel_delivery_steps( nest::kernel().simulation_manager.get_slice_origin() ),
      e.get_weight() * e.get_multiplicity() );
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
    d.update_value( nest::names::V_m, s.v );
    d.update_value( "I", s.i );
    d.update_value( "b", s.b );
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
  };
  struct State_
  {
    double v = 0.0, i = 0.0, b = 0.0, c = 0.0;  // c: refractory steps left
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
    nest::UniversalDataLogger< n3ml_cell > logger_;
  };

  void
  init_buffers_() override
  {
    B_.spikes_.clear();
    B_.logger_.reset();
    ArchivingNode::clear_history();
  }
  void
  pre_run_hook() override
  {
    B_.logger_.init();
  }
  void
  update( nest::Time const& origin, const long from, const long to ) override
  {
    for ( long lag = from; lag < to; ++lag )
    {
      S_.i = P_.a_s * S_.i + B_.spikes_.get_value( lag );  // the current evolves while refractory too
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
