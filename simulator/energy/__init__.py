"""Energy and area: technology tables (:mod:`.tech`) and the pricing of activity (:mod:`.model`)."""
