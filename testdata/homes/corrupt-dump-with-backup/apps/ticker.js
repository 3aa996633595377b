// fixture app script
